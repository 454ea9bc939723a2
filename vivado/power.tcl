# Power of the routed design with simulated switching activity, without re-running the build.
#
#   VELCRO_SAIF=sim.saif VELCRO_POWER_TAG=c0 vivado -mode batch -source vivado/power.tcl
#   (`make vivado-power VELCRO_SAIF=... VELCRO_POWER_TAG=...`)
#
# Opens VELCRO_OUT/post_route.dcp (written by build.tcl), applies the same vectorless settings as
# build.tcl (rst held inactive), annotates the SAIF (read_saif -strip_path VELCRO_SAIF_INSTANCE)
# and writes VELCRO_OUT/power_<tag>.rpt, which parse_reports.py adds to summary.json under
# "power". One routed build thus gives the power of every point of a C sweep. VELCRO_SAIF must be
# normalised (vivado/saif_normalize.py; `make vivado-power` does it and then fails when fewer than
# 80 % of the design nets matched).

source [file join [file dirname [file normalize [info script]]] settings.tcl]
velcro::load_settings

if {$velcro::saif eq ""} {
    velcro::fail "VELCRO_SAIF is not set: power.tcl needs a SAIF file from simulation"
}
set velcro_tag [velcro::env VELCRO_POWER_TAG [file rootname [file tail $velcro::saif]]]
# power_vectorless.rpt and power_saif.rpt belong to build.tcl: those tags would overwrite them.
if {![regexp {^[A-Za-z0-9_.+-]+$} $velcro_tag] || [string tolower $velcro_tag] in {vectorless saif}} {
    velcro::fail "VELCRO_POWER_TAG=$velcro_tag: use letters, digits and _ . + - (not the reserved 'vectorless' or 'saif')"
}
set velcro_dcp [file join $velcro::out post_route.dcp]
if {![file isfile $velcro_dcp]} {
    velcro::fail "$velcro_dcp not found: run the build first (make vivado)"
}

open_checkpoint $velcro_dcp
velcro::set_power_defaults
velcro::read_activity [file join $velcro::out saif_unmatched_$velcro_tag.txt]
report_power -file [file join $velcro::out power_$velcro_tag.rpt]
puts "velcro: wrote [file join $velcro::out power_$velcro_tag.rpt]"
