# Dry run of the VELCRO Vivado scripts in plain tclsh, without Vivado.
#
#   tclsh vivado/dryrun.tcl LOG SCRIPT [SCRIPT ...]          (`make vivado-dryrun`)
#
# Every command Tcl does not know (that is, every Vivado command) reaches the `unknown` handler
# below, which appends the call to LOG as one JSON array of strings per line and returns "",
# except the object queries get_ports, get_sites, get_cells, get_nets, get_pblocks and get_clocks:
# they return their last argument, as if that object existed (so a check such as
# `llength [get_sites $site]` passes, and a logged call shows which object it was given).
# Environment variable VELCRO_DRYRUN_MISSING lists queries that find nothing instead (returns "").
# The ipx:: commands that add a named register or parameter (ipx::add_register,
# ipx::add_register_parameter, ipx::add_bus_parameter NAME PARENT) return a handle: NAME, after the
# parent's handle and a "/" when the parent has one ("cfg", "cfg/ASSOCIATED_BUSIF"), so a logged
# set_property shows which register or parameter it set (vivado/kernel/package_xo.tcl).
# Tcl commands (file, open, puts, ...) run for real, so generated files (constraints, the IP
# wrapper) are written. tests/vivado/test_vivado_flow.py and test_kernel_packaging.py read LOG to
# check the flows.

if {$argc < 2} {
    puts stderr "usage: tclsh vivado/dryrun.tcl LOG SCRIPT \[SCRIPT ...\]"
    exit 2
}

namespace eval velcro_dryrun {
    variable log [open [lindex $argv 0] w]
    fconfigure $log -encoding utf-8
    variable queries {get_ports get_sites get_cells get_nets get_pblocks get_clocks}
    variable missing {}
    variable named_adds {ipx::add_register ipx::add_register_parameter ipx::add_bus_parameter}
    if {[info exists ::env(VELCRO_DRYRUN_MISSING)]} {
        set missing $::env(VELCRO_DRYRUN_MISSING)
    }
}

proc velcro_dryrun::json_string {s} {
    set out "\""
    foreach ch [split $s ""] {
        scan $ch %c code
        if {$ch eq "\""} {
            append out "\\\""
        } elseif {$ch eq "\\"} {
            append out "\\\\"
        } elseif {$code < 32} {
            append out [format "\\u%04x" $code]
        } else {
            append out $ch
        }
    }
    return "$out\""
}

proc unknown {args} {
    set items {}
    foreach a $args {
        lappend items [velcro_dryrun::json_string $a]
    }
    puts $velcro_dryrun::log "\[[join $items {, }]\]"
    flush $velcro_dryrun::log
    set name [lindex $args 0]
    if {$name in $velcro_dryrun::queries && $name ni $velcro_dryrun::missing && [llength $args] > 1} {
        return [lindex $args end]
    }
    if {$name in $velcro_dryrun::named_adds && [llength $args] == 3} {
        lassign $args -> child parent
        if {$parent eq ""} {
            return $child
        }
        return "$parent/$child"
    }
    return ""
}

foreach velcro_dryrun_script [lrange $argv 1 end] {
    source $velcro_dryrun_script
}
close $velcro_dryrun::log
