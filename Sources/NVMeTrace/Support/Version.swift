/// The version printed by `--version` and recorded in reports.
public enum NVMeTraceVersion {
    public static let string = "0.1.0"
}
