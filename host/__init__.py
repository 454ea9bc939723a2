"""The Python host: the hardware layer's 16 channels on `velcro_krnl` compute units, simulated or on a card.

`host.api` builds each channel's configuration image and IFMAP buffer (model/hw/image.py), runs them
on a backend (`host.backends`: `sim` the simulated kernel, `xrt` an Alveo card through pyxrt) and
reads back the OFMAPs and the counters the kernel wrote into each image. `velcro run` (host/cli.py)
and the hardware-in-the-loop stage of `make sim` (sim/flows/end_to_end.py) both go through it.
"""
