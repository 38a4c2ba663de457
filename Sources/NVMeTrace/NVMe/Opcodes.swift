/// Command names by opcode (NVMe Base 2.1 §5 Figure 28 admin, NVM Command Set §3 I/O,
/// NVMe over Fabrics §6 Fabrics commands).
public enum NVMeOpcodes {
    public static let fabrics: UInt8 = 0x7F

    public static func adminName(_ op: UInt8) -> String {
        switch op {
        case 0x00: "Delete I/O Submission Queue"
        case 0x01: "Create I/O Submission Queue"
        case 0x02: "Get Log Page"
        case 0x04: "Delete I/O Completion Queue"
        case 0x05: "Create I/O Completion Queue"
        case 0x06: "Identify"
        case 0x08: "Abort"
        case 0x09: "Set Features"
        case 0x0A: "Get Features"
        case 0x0C: "Asynchronous Event Request"
        case 0x0D: "Namespace Management"
        case 0x10: "Firmware Commit"
        case 0x11: "Firmware Image Download"
        case 0x14: "Device Self-test"
        case 0x15: "Namespace Attachment"
        case 0x18: "Keep Alive"
        case 0x19: "Directive Send"
        case 0x1A: "Directive Receive"
        case 0x1C: "Virtualization Management"
        case 0x1D: "NVMe-MI Send"
        case 0x1E: "NVMe-MI Receive"
        case 0x20: "Capacity Management"
        case 0x24: "Lockdown"
        case 0x7C: "Doorbell Buffer Config"
        case 0x80: "Format NVM"
        case 0x81: "Security Send"
        case 0x82: "Security Receive"
        case 0x84: "Sanitize"
        case 0x86: "Get LBA Status"
        default: "Admin Unknown (\(hexValue(op)))"
        }
    }

    public static func ioName(_ op: UInt8) -> String {
        switch op {
        case 0x00: "Flush"
        case 0x01: "Write"
        case 0x02: "Read"
        case 0x04: "Write Uncorrectable"
        case 0x05: "Compare"
        case 0x08: "Write Zeroes"
        case 0x09: "Dataset Management"
        case 0x0C: "Verify"
        case 0x0D: "Reservation Register"
        case 0x0E: "Reservation Report"
        case 0x11: "Reservation Acquire"
        case 0x15: "Reservation Release"
        case 0x18: "Cancel"
        case 0x19: "Copy"
        case 0x79: "Zone Management Send"
        case 0x7A: "Zone Management Receive"
        case 0x7D: "Zone Append"
        default: "I/O Unknown (\(hexValue(op)))"
        }
    }

    public static func fabricsName(_ fctype: UInt8) -> String {
        switch fctype {
        case 0x00: "Property Set"
        case 0x01: "Connect"
        case 0x04: "Property Get"
        case 0x05: "Authentication Send"
        case 0x06: "Authentication Receive"
        case 0x08: "Disconnect"
        default: "Fabrics Unknown (\(hexValue(fctype)))"
        }
    }

    /// Controller property names by offset (NVMe over Fabrics §3.5, Base §3.1.4).
    public static func propertyName(_ offset: UInt32) -> String {
        switch offset {
        case 0x00: "CAP"
        case 0x08: "VS"
        case 0x0C: "INTMS"
        case 0x10: "INTMC"
        case 0x14: "CC"
        case 0x1C: "CSTS"
        case 0x20: "NSSR"
        case 0x24: "AQA"
        case 0x28: "ASQ"
        case 0x30: "ACQ"
        case 0x64: "NSSD"
        case 0x68: "CRTO"
        default: hexValue(offset, digits: 2)
        }
    }

    public static func featureName(_ fid: UInt8) -> String {
        switch fid {
        case 0x01: "Arbitration"
        case 0x02: "Power Management"
        case 0x03: "LBA Range Type"
        case 0x04: "Temperature Threshold"
        case 0x05: "Error Recovery"
        case 0x06: "Volatile Write Cache"
        case 0x07: "Number of Queues"
        case 0x08: "Interrupt Coalescing"
        case 0x09: "Interrupt Vector Configuration"
        case 0x0A: "Write Atomicity Normal"
        case 0x0B: "Asynchronous Event Configuration"
        case 0x0C: "Autonomous Power State Transition"
        case 0x0D: "Host Memory Buffer"
        case 0x0E: "Timestamp"
        case 0x0F: "Keep Alive Timer"
        case 0x10: "Host Controlled Thermal Management"
        case 0x11: "Non-Operational Power State Config"
        case 0x16: "Host Behavior Support"
        case 0x7E: "Host Metadata"
        case 0x80: "Software Progress Marker"
        case 0x81: "Host Identifier"
        case 0x82: "Reservation Notification Mask"
        case 0x83: "Reservation Persistence"
        default: "Feature \(hexValue(fid))"
        }
    }

    public static func logPageName(_ lid: UInt8) -> String {
        switch lid {
        case 0x00: "Supported Log Pages"
        case 0x01: "Error Information"
        case 0x02: "SMART / Health Information"
        case 0x03: "Firmware Slot Information"
        case 0x04: "Changed Namespace List"
        case 0x05: "Commands Supported and Effects"
        case 0x06: "Device Self-test"
        case 0x0C: "Asymmetric Namespace Access"
        case 0x0D: "Persistent Event Log"
        case 0x70: "Discovery"
        case 0x71: "Host Discovery"
        case 0x72: "AVE Discovery"
        case 0x73: "Pull Model DDC Request"
        case 0x80: "Reservation Notification"
        case 0x81: "Sanitize Status"
        default: "Log \(hexValue(lid))"
        }
    }

    public static func identifyCNSName(_ cns: UInt8) -> String {
        switch cns {
        case 0x00: "Namespace"
        case 0x01: "Controller"
        case 0x02: "Active Namespace List"
        case 0x03: "Namespace Identification Descriptors"
        case 0x05: "I/O Command Set Specific Namespace"
        case 0x06: "I/O Command Set Specific Controller"
        case 0x07: "I/O Command Set Specific Active Namespace List"
        case 0x08: "I/O Command Set Independent Namespace"
        case 0x1C: "I/O Command Set"
        default: "CNS \(hexValue(cns))"
        }
    }
}
