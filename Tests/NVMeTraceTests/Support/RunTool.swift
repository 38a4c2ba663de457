import Foundation

/// What a child process left behind.
struct ToolRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

struct ToolTimedOut: Error, CustomStringConvertible {
    var command: String
    var seconds: Double
    var description: String { "\(command) did not finish within \(seconds) s and was killed" }
}

/// Runs a program with a time limit, reading its standard output and error at the same time (a
/// child filling one pipe while the other is read would otherwise block for ever). A child still
/// running at the limit is killed and the call throws.
func runTool(_ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String]? = nil,
             timeout: Double) throws -> ToolRun {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try p.run()
    let group = DispatchGroup()
    nonisolated(unsafe) var o = Data(), e = Data()
    DispatchQueue.global().async(group: group) { o = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { e = err.fileHandleForReading.readDataToEndOfFile() }
    if let stdin {
        DispatchQueue.global().async(group: group) {
            input.fileHandleForWriting.write(stdin)
            try? input.fileHandleForWriting.close()
        }
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw ToolTimedOut(command: ([executable] + arguments).joined(separator: " "), seconds: timeout)
    }
    p.waitUntilExit()
    return ToolRun(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}
