/// A completion's status field (CQE DW3 bits 31:17 — here with the phase bit removed):
/// Status Code, Status Code Type, More, Do Not Retry (NVMe Base 2.1 §4.2.3).
public struct NVMeStatus: Sendable, Equatable, Hashable {
    /// The 16-bit status field as on the wire (bit 0 is the phase tag).
    public var raw: UInt16

    public init(raw: UInt16) { self.raw = raw }

    public var sc: UInt8 { UInt8(truncatingIfNeeded: raw >> 1) }
    public var sct: UInt8 { UInt8(truncatingIfNeeded: raw >> 9) & 0x7 }
    public var crd: UInt8 { UInt8(truncatingIfNeeded: raw >> 12) & 0x3 }
    public var more: Bool { raw & 0x4000 != 0 }
    public var dnr: Bool { raw & 0x8000 != 0 }
    public var isSuccess: Bool { sc == 0 && sct == 0 }
    /// SCT and SC as one number, as nvme-cli prints it (e.g. 0x182 for Connect Invalid Parameters).
    public var code: UInt16 { UInt16(sct) << 8 | UInt16(sc) }

    /// Status name; `fabrics` selects the Fabrics command-specific codes (Connect and friends).
    public func name(fabricsCommand: UInt8? = nil, opcode: UInt8? = nil) -> String {
        let base: String
        switch sct {
        case 0: base = NVMeStatus.genericName(sc)
        case 1: base = NVMeStatus.commandSpecificName(sc, fctype: fabricsCommand, opcode: opcode)
        case 2: base = NVMeStatus.mediaName(sc)
        case 3: base = NVMeStatus.pathName(sc)
        case 7: base = "Vendor Specific (\(hexValue(sc)))"
        default: base = "SCT \(sct) SC \(hexValue(sc))"
        }
        return dnr ? base + " (DNR)" : base
    }

    static func genericName(_ sc: UInt8) -> String {
        switch sc {
        case 0x00: "Success"
        case 0x01: "Invalid Command Opcode"
        case 0x02: "Invalid Field in Command"
        case 0x03: "Command ID Conflict"
        case 0x04: "Data Transfer Error"
        case 0x05: "Commands Aborted due to Power Loss Notification"
        case 0x06: "Internal Error"
        case 0x07: "Command Abort Requested"
        case 0x08: "Command Aborted due to SQ Deletion"
        case 0x09: "Command Aborted due to Failed Fused Command"
        case 0x0A: "Command Aborted due to Missing Fused Command"
        case 0x0B: "Invalid Namespace or Format"
        case 0x0C: "Command Sequence Error"
        case 0x0D: "Invalid SGL Segment Descriptor"
        case 0x0E: "Invalid Number of SGL Descriptors"
        case 0x0F: "Data SGL Length Invalid"
        case 0x10: "Metadata SGL Length Invalid"
        case 0x11: "SGL Descriptor Type Invalid"
        case 0x12: "Invalid Use of Controller Memory Buffer"
        case 0x13: "PRP Offset Invalid"
        case 0x14: "Atomic Write Unit Exceeded"
        case 0x15: "Operation Denied"
        case 0x16: "SGL Offset Invalid"
        case 0x18: "Host Identifier Inconsistent Format"
        case 0x19: "Keep Alive Timer Expired"
        case 0x1A: "Keep Alive Timeout Invalid"
        case 0x1B: "Command Aborted due to Preempt and Abort"
        case 0x1C: "Sanitize Failed"
        case 0x1D: "Sanitize In Progress"
        case 0x1E: "SGL Data Block Granularity Invalid"
        case 0x1F: "Command Not Supported for Queue in CMB"
        case 0x20: "Namespace is Write Protected"
        case 0x21: "Command Interrupted"
        case 0x22: "Transient Transport Error"
        case 0x23: "Command Prohibited by Command and Feature Lockdown"
        case 0x24: "Admin Command Media Not Ready"
        case 0x80: "LBA Out of Range"
        case 0x81: "Capacity Exceeded"
        case 0x82: "Namespace Not Ready"
        case 0x83: "Reservation Conflict"
        case 0x84: "Format In Progress"
        default: "Generic Status \(hexValue(sc))"
        }
    }

    static func commandSpecificName(_ sc: UInt8, fctype: UInt8?, opcode: UInt8?) -> String {
        if fctype != nil || sc >= 0x80 && sc <= 0x91 && opcode == NVMeOpcodes.fabrics {
            switch sc {
            case 0x80: return "Connect Incompatible Format"
            case 0x81: return "Connect Controller Busy"
            case 0x82: return "Connect Invalid Parameters"
            case 0x83: return "Connect Restart Discovery"
            case 0x84: return "Connect Invalid Host"
            case 0x85: return "Invalid Queue Type"
            case 0x90: return "Discover Restart"
            case 0x91: return "Authentication Required"
            default: break
            }
        }
        switch sc {
        case 0x00: return "Completion Queue Invalid"
        case 0x01: return "Invalid Queue Identifier"
        case 0x02: return "Invalid Queue Size"
        case 0x03: return "Abort Command Limit Exceeded"
        case 0x05: return "Asynchronous Event Request Limit Exceeded"
        case 0x06: return "Invalid Firmware Slot"
        case 0x07: return "Invalid Firmware Image"
        case 0x08: return "Invalid Interrupt Vector"
        case 0x09: return "Invalid Log Page"
        case 0x0A: return "Invalid Format"
        case 0x0B: return "Firmware Activation Requires Conventional Reset"
        case 0x0C: return "Invalid Queue Deletion"
        case 0x0D: return "Feature Identifier Not Saveable"
        case 0x0E: return "Feature Not Changeable"
        case 0x0F: return "Feature Not Namespace Specific"
        case 0x14: return "Overlapping Range"
        case 0x15: return "Namespace Insufficient Capacity"
        case 0x16: return "Namespace Identifier Unavailable"
        case 0x18: return "Namespace Already Attached"
        case 0x19: return "Namespace Is Private"
        case 0x1A: return "Namespace Not Attached"
        case 0x1B: return "Thin Provisioning Not Supported"
        case 0x1C: return "Controller List Invalid"
        case 0x1D: return "Device Self-test In Progress"
        case 0x1F: return "Invalid Controller Identifier"
        case 0x20: return "Invalid Secondary Controller State"
        case 0x22: return "Invalid Resource Identifier"
        case 0x80: return "Conflicting Attributes"
        case 0x81: return "Invalid Protection Information"
        case 0x82: return "Attempted Write to Read Only Range"
        case 0x83: return "Command Size Limit Exceeded"
        case 0xB8: return "Zoned Boundary Error"
        case 0xB9: return "Zone Is Full"
        case 0xBA: return "Zone Is Read Only"
        case 0xBB: return "Zone Is Offline"
        case 0xBC: return "Zone Invalid Write"
        default: return "Command Specific Status \(hexValue(sc))"
        }
    }

    static func mediaName(_ sc: UInt8) -> String {
        switch sc {
        case 0x80: "Write Fault"
        case 0x81: "Unrecovered Read Error"
        case 0x82: "End-to-end Guard Check Error"
        case 0x83: "End-to-end Application Tag Check Error"
        case 0x84: "End-to-end Reference Tag Check Error"
        case 0x85: "Compare Failure"
        case 0x86: "Access Denied"
        case 0x87: "Deallocated or Unwritten Logical Block"
        case 0x88: "End-to-End Storage Tag Check Error"
        default: "Media Error \(hexValue(sc))"
        }
    }

    static func pathName(_ sc: UInt8) -> String {
        switch sc {
        case 0x00: "Internal Path Error"
        case 0x01: "Asymmetric Access Persistent Loss"
        case 0x02: "Asymmetric Access Inaccessible"
        case 0x03: "Asymmetric Access Transition"
        case 0x60: "Controller Pathing Error"
        case 0x70: "Host Pathing Error"
        case 0x71: "Command Aborted By Host"
        default: "Path Error \(hexValue(sc))"
        }
    }
}

/// H2C/C2HTermReq Fatal Error Status (NVMe/TCP Transport §3.6.2.4 Figure 26).
public enum TermReqFES {
    /// `fromHost`: an H2CTermReq (the host complains about the controller's PDU).
    public static func name(_ fes: UInt16, fromHost: Bool) -> String {
        switch fes {
        case 1: "Invalid PDU Header Field"
        case 2: "PDU Sequence Error"
        case 3: "Header Digest Error"
        case 4: "Data Transfer Out of Range"
        case 5: fromHost ? "R2T Limit Exceeded" : "Data Transfer Limit Exceeded"
        case 6: "Unsupported Parameter"
        default: "Reserved FES \(hexValue(fes))"
        }
    }
}
