# VELCRO on the Alveo U280: non-project Vivado batch flow (targets Vivado 2023.2 or newer).
#
#   vivado -mode batch -source vivado/build.tcl        (from the repository root; `make vivado`)
#
# Settings are environment variables with defaults, listed in vivado/settings.tcl. The design is
# synthesized out of context (its ports are not board pins) with its I/O timed against a budget,
# its clock driven from a known BUFGCE site (HD.CLK_SRC) and, on the U280, kept in one SLR; then
# it is placed and routed, and utilization (flat and hierarchical), timing summary (with
# unconstrained paths), power (vectorless, and with VELCRO_SAIF also from simulated activity) and
# checkpoints are written to VELCRO_OUT. vivado/parse_reports.py turns the reports into
# VELCRO_OUT/summary.json.
#
# Only standard Vivado Tcl commands (UG835) are used, and only the clock-site check reads a return
# value, so tests source this file in plain tclsh with recording stubs (tests/vivado/).

source [file join [file dirname [file normalize [info script]]] settings.tcl]
velcro::load_settings

# (`version` exists only inside Vivado; a dry run with stubs skips the check.)
if {[llength [info commands version]]
    && [regexp {^(\d+)\.(\d+)} [version -short] velcro_version velcro_year velcro_rel]
    && ($velcro_year < 2023 || ($velcro_year == 2023 && $velcro_rel < 2))} {
    puts "velcro: warning: Vivado $velcro_version is older than 2023.2, which these scripts target"
}

file mkdir $velcro::out
velcro::write_run_info [file join $velcro::out run_info.txt]
set velcro_xdc [velcro::write_timing_constraints]
set velcro_physical_xdc [velcro::write_physical_constraints]
puts "velcro: top $velcro::top, part $velcro::part, clock $velcro::clock_mhz MHz\
      (period $velcro::period_ns ns), output $velcro::out"

# ---- sources: the generated Verilog (self-contained: every submodule in the same file)
read_verilog $velcro::rtl_file
read_xdc $velcro_xdc

# ---- synthesis, out of context: no I/O buffers on the ports
synth_design -top $velcro::top -part $velcro::part -mode out_of_context
# physical constraints for implementation: clock source site (checked first) and SLR pblock
velcro::check_clock_source
read_xdc $velcro_physical_xdc
write_checkpoint -force [file join $velcro::out post_synth.dcp]
report_utilization -file [file join $velcro::out post_synth_utilization.rpt]

# ---- implementation
opt_design
place_design
phys_opt_design
write_checkpoint -force [file join $velcro::out post_place.dcp]
route_design
write_checkpoint -force [file join $velcro::out post_route.dcp]

# ---- reports of the routed design (file names are the ones parse_reports.py reads)
report_utilization -file [file join $velcro::out utilization.rpt]
report_utilization -hierarchical -file [file join $velcro::out utilization_hier.rpt]
report_timing_summary -max_paths 10 -report_unconstrained -file [file join $velcro::out timing_summary.rpt]

velcro::set_power_defaults
report_power -file [file join $velcro::out power_vectorless.rpt]
if {$velcro::saif ne ""} {
    velcro::read_activity [file join $velcro::out saif_unmatched.txt]
    report_power -file [file join $velcro::out power_saif.rpt]
}
puts "velcro: done; reports and checkpoints in $velcro::out"
