# Packages velcro_krnl as a Vitis RTL kernel: VELCRO_VITIS_OUT/velcro_krnl.xo for `v++ --link`.
#
#   vivado -mode batch -source vivado/kernel/package_xo.tcl      (`make xo`, which writes kernel.xml first)
#
# Environment (defaults): VELCRO_VITIS_OUT (build/vitis) output folder, which must hold kernel.xml
# from vivado/kernel/gen_kernel.py; VELCRO_RTL_DIR (<repo>/rtl/generated) where <kernel>.v is read;
# VELCRO_PART (xcu280-fsvh2892-2L-e) part of the packaging project.
#
# kernel.xml, generated from model/hw/spec.py, is the one description of the kernel: its name and
# VLNV name the IP, its control range and arguments become the IP's register map on s_axi_control
# (pointers with ASSOCIATED_BUSIF m_axi_gmem), and package_xo puts it into the .xo unchanged
# (-kernel_xml). The steps follow UG1393 ("Packaging the RTL Code as a Vitis XO") and AMD's
# Vitis_Accel_Examples rtl_kernels/rtl_vadd: a throw-away project with the Verilog,
# ipx::package_project, the interfaces associated with ap_clk, ap_rst_n active low, the register
# map, sdx_kernel properties, ipx::check_integrity -kernel, then package_xo. Outputs:
# <kernel>.xo, the IP in ip/, the project in xo_project/ (deleted at the end), all in VELCRO_VITIS_OUT.

# velcro::env, velcro::fail and velcro::repo_root (plain Tcl, shared with the Vivado flow)
source [file join [file dirname [file dirname [file normalize [info script]]]] settings.tcl]

# Value of attribute NAME in the XML start tag ELEMENT.
proc velcro::xml_attr {element name} {
    if {![regexp [format {\s%s="([^"]*)"} $name] $element -> value]} {
        velcro::fail "kernel.xml: no attribute $name in $element"
    }
    return $value
}

# The kernel of kernel.xml as a dict: name, vlnv, interrupt, control_range, and args (a list of
# dicts name, offset, size, port), in the form gen_kernel.py writes.
proc velcro::read_kernel_xml {path} {
    if {![file isfile $path]} {
        velcro::fail "$path not found: make xo writes it (python3 vivado/kernel/gen_kernel.py kernel-xml)"
    }
    set f [open $path r]
    set xml [read $f]
    close $f
    if {![regexp {<kernel\s[^>]*>} $xml kernel]} {
        velcro::fail "$path: no <kernel> element"
    }
    set result [dict create name [velcro::xml_attr $kernel name] vlnv [velcro::xml_attr $kernel vlnv] \
        interrupt [velcro::xml_attr $kernel interrupt]]
    foreach port [regexp -all -inline {<port\s[^>]*>} $xml] {
        if {[velcro::xml_attr $port mode] eq "slave"} {
            dict set result control_range [velcro::xml_attr $port range]
        }
    }
    set args {}
    foreach arg [regexp -all -inline {<arg\s[^>]*>} $xml] {
        lappend args [dict create name [velcro::xml_attr $arg name] offset [velcro::xml_attr $arg offset] \
            size [velcro::xml_attr $arg size] port [velcro::xml_attr $arg port]]
    }
    dict set result args $args
    return $result
}

# Port names of MODULE in FILE, from its module header (Verilog as Yosys writes it).
proc velcro::module_ports {file module} {
    if {![file isfile $file]} {
        velcro::fail "$file not found: generate the Verilog first (make rtl)"
    }
    set f [open $file r]
    set text [read $f]
    close $f
    if {![regexp "(?:^|\n)module\\s+$module\\s*\\((\[^;\]*)\\)\\s*;" $text -> header]} {
        velcro::fail "$file: no module $module"
    }
    return [regexp -all -inline {[A-Za-z_][A-Za-z0-9_$]*} $header]
}

# Sets bus parameter NAME of bus interface BUSIF to VALUE, adding the parameter when missing.
proc velcro::set_bus_parameter {core busif name value} {
    set bif [ipx::get_bus_interfaces $busif -of_objects $core]
    set param [ipx::get_bus_parameters $name -of_objects $bif]
    if {[llength $param] == 0} {
        set param [ipx::add_bus_parameter $name $bif]
    }
    set_property value $value $param
}

set velcro_out [file normalize [velcro::env VELCRO_VITIS_OUT build/vitis]]
set velcro_part [velcro::env VELCRO_PART xcu280-fsvh2892-2L-e]
set velcro_rtl_dir [file normalize [velcro::env VELCRO_RTL_DIR [file join $velcro::repo_root rtl generated]]]
set velcro_kernel_xml [file join $velcro_out kernel.xml]
set velcro_kernel [velcro::read_kernel_xml $velcro_kernel_xml]
set velcro_name [dict get $velcro_kernel name]
lassign [split [dict get $velcro_kernel vlnv] :] velcro_vendor velcro_library velcro_ip_name velcro_version
if {$velcro_ip_name ne $velcro_name} {
    velcro::fail "kernel.xml: VLNV [dict get $velcro_kernel vlnv] does not name kernel $velcro_name"
}
set velcro_rtl_file [file join $velcro_rtl_dir $velcro_name.v]
set velcro_ports [velcro::module_ports $velcro_rtl_file $velcro_name]

foreach velcro_port {ap_clk ap_rst_n} {
    if {$velcro_port ni $velcro_ports} {
        velcro::fail "$velcro_rtl_file: module $velcro_name has no port $velcro_port (DESIGN section 9)"
    }
}
foreach velcro_prefix {s_axi_control m_axi_gmem} {
    if {[llength [lsearch -glob $velcro_ports ${velcro_prefix}_*]] == 0} {
        velcro::fail "$velcro_rtl_file: module $velcro_name has no ${velcro_prefix}_* ports (DESIGN section 9)"
    }
}
set velcro_interrupt [expr {"interrupt" in $velcro_ports}]
if {$velcro_interrupt != [string is true [dict get $velcro_kernel interrupt]]} {
    velcro::fail "kernel.xml says interrupt=[dict get $velcro_kernel interrupt], $velcro_rtl_file disagrees: rerun make xo"
}
# Bus interfaces: name, type, ports. Every port of the module belongs to one (gen_kernel.py checks).
set velcro_busifs [list \
    ap_clk xilinx.com:signal:clock_rtl:1.0 ap_clk \
    ap_rst_n xilinx.com:signal:reset_rtl:1.0 ap_rst_n \
    s_axi_control xilinx.com:interface:aximm_rtl:1.0 [lsearch -all -inline -glob $velcro_ports s_axi_control_*] \
    m_axi_gmem xilinx.com:interface:aximm_rtl:1.0 [lsearch -all -inline -glob $velcro_ports m_axi_gmem_*]]
if {$velcro_interrupt} {
    lappend velcro_busifs interrupt xilinx.com:signal:interrupt_rtl:1.0 interrupt
}

# ---- a throw-away project holding the Verilog (the IP packager works on a project)
create_project -force ${velcro_name}_xo [file join $velcro_out xo_project] -part $velcro_part
add_files -norecurse [list $velcro_rtl_file]
set_property top $velcro_name [current_fileset]
update_compile_order -fileset sources_1

# ---- the IP, named as kernel.xml's VLNV
set velcro_ip_dir [file join $velcro_out ip]
ipx::package_project -root_dir $velcro_ip_dir -vendor $velcro_vendor -library $velcro_library \
    -taxonomy /KernelIP -import_files -set_current true -force
set velcro_core [ipx::current_core]
set_property name $velcro_name $velcro_core
set_property version $velcro_version $velcro_core
set_property display_name "VELCRO conv2d Vitis kernel ($velcro_name)" $velcro_core
set_property sdx_kernel true $velcro_core
set_property sdx_kernel_type rtl $velcro_core
# As AMD's RTL kernel examples: not tied to one device family.
set_property supported_families {} $velcro_core
set_property auto_family_support_level level_2 $velcro_core

# ---- interfaces: the packager infers them from the port names; infer explicitly if it did not
foreach {velcro_busif velcro_type velcro_members} $velcro_busifs {
    if {[llength [ipx::get_bus_interfaces $velcro_busif -of_objects $velcro_core]] == 0} {
        ipx::infer_bus_interface $velcro_members $velcro_type $velcro_core
    }
}
ipx::associate_bus_interfaces -busif s_axi_control -clock ap_clk $velcro_core
ipx::associate_bus_interfaces -busif m_axi_gmem -clock ap_clk $velcro_core
ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $velcro_core
velcro::set_bus_parameter $velcro_core ap_rst_n POLARITY ACTIVE_LOW
if {$velcro_interrupt} {
    velcro::set_bus_parameter $velcro_core interrupt SENSITIVITY LEVEL_HIGH
}
# UG1393: AXI4 masters should declare INCR bursts only (no WRAP/FIXED) and no narrow bursts.
velcro::set_bus_parameter $velcro_core m_axi_gmem HAS_BURST 0
velcro::set_bus_parameter $velcro_core m_axi_gmem SUPPORTS_NARROW_BURST 0

# ---- register map of s_axi_control: the ap_ctrl_hs block, then the arguments of kernel.xml
set velcro_mm [ipx::get_memory_maps s_axi_control -of_objects $velcro_core]
if {[llength $velcro_mm] == 0} {
    set velcro_mm [ipx::add_memory_map s_axi_control $velcro_core]
}
set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $velcro_core]
set velcro_block [lindex [ipx::get_address_blocks -of_objects $velcro_mm] 0]
if {$velcro_block eq ""} {
    set velcro_block [ipx::add_address_block reg0 $velcro_mm]
}
set_property range [dict get $velcro_kernel control_range] $velcro_block
set_property width 32 $velcro_block
foreach {velcro_reg velcro_offset velcro_doc} {
    CTRL 0x000 "ap_ctrl_hs: bit 0 ap_start, 1 ap_done, 2 ap_idle, 3 ap_ready"
    GIER 0x004 "global interrupt enable"
    IP_IER 0x008 "interrupt enable: bit 0 ap_done"
    IP_ISR 0x00C "interrupt status: bit 0 ap_done, toggle on write 1"
} {
    set velcro_r [ipx::add_register $velcro_reg $velcro_block]
    set_property address_offset $velcro_offset $velcro_r
    set_property size 32 $velcro_r
    set_property description $velcro_doc $velcro_r
}
foreach velcro_arg [dict get $velcro_kernel args] {
    set velcro_r [ipx::add_register [dict get $velcro_arg name] $velcro_block]
    set_property address_offset [dict get $velcro_arg offset] $velcro_r
    set_property size [expr {8 * [dict get $velcro_arg size]}] $velcro_r
    set_property description "kernel argument [dict get $velcro_arg name]" $velcro_r
    if {[dict get $velcro_arg port] ne "s_axi_control"} {
        set_property value [dict get $velcro_arg port] [ipx::add_register_parameter ASSOCIATED_BUSIF $velcro_r]
    }
}

ipx::create_xgui_files $velcro_core
ipx::update_checksums $velcro_core
ipx::check_integrity -kernel $velcro_core
ipx::save_core $velcro_core
close_project -delete

# ---- the .xo: the IP and kernel.xml
set velcro_xo [file join $velcro_out $velcro_name.xo]
package_xo -xo_path $velcro_xo -kernel_name $velcro_name -ip_directory $velcro_ip_dir \
    -kernel_xml $velcro_kernel_xml -force
puts "velcro: kernel $velcro_name packaged as $velcro_xo"
