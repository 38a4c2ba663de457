import Foundation

/// "2.5 s", "240.2 s", "120 s", "0.003 s": durations in warnings, findings and reports.
func formatSeconds(_ s: Double) -> String {
    if s == s.rounded() && abs(s) < 1e9 { return "\(Int(s)) s" }
    if abs(s) >= 100 { return String(format: "%.1f s", s) }
    if abs(s) >= 1 { return String(format: "%.2f s", s) }
    return String(format: "%.3f s", s)
}
