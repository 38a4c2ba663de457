import Foundation

/// The version printed by `--version` and recorded in reports.
public enum NVMeTraceVersion {
    public static let string = "0.1.0"
}

/// The process's peak resident set size (VmHWM) in KiB, from /proc; nil where there is none.
/// Measured inside the process: a parent's wait4 figure also counts the parent's own memory
/// from before the child's exec.
public func peakResidentKiB() -> Int? { procStatusKiB("VmHWM:") }

/// The process's resident set size now (VmRSS) in KiB.
public func residentKiB() -> Int? { procStatusKiB("VmRSS:") }

private func procStatusKiB(_ field: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix(field) {
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
    }
    return nil
}
