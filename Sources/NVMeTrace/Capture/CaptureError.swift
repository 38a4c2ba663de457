/// Problems reading capture input. Each names the file and, when reading had started, the last
/// frame that was read completely, so the user knows how far the analysis got.
public enum CaptureError: Error, CustomStringConvertible, Sendable {
    case cannotOpen(file: String, reason: String)
    case readFailed(file: String, lastGoodFrame: Int, reason: String)
    case liveFailed(device: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason):
            return "\(file): cannot open capture: \(reason)"
        case let .readFailed(file, frame, reason):
            return "\(file): capture ends in the middle of frame \(frame + 1) (after \(frame) complete frames): \(reason)"
        case let .liveFailed(device, reason):
            return "\(device): \(reason)"
        }
    }
}
