// nvmetrace-fuzz TARGET [libFuzzer options and corpus directories]
//
// Built by Fuzz/run with -sanitize=fuzzer,address it runs libFuzzer on one of FuzzTargets; built
// plainly it replays the given files (or every file in the given directories) through the target.
import CFuzzerDriver
import Foundation
import NVMeTrace

nonisolated(unsafe) var selectedTarget = ""

var args = CommandLine.arguments
guard args.count >= 2, FuzzTargets.names.contains(args[1]) else {
    FileHandle.standardError.write(Data("usage: nvmetrace-fuzz \(FuzzTargets.names.joined(separator: "|")) [libFuzzer options] [corpus...]\n".utf8))
    exit(2)
}
selectedTarget = args.remove(at: 1)

var argc = Int32(args.count)
var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
let rc = cargs.withUnsafeMutableBufferPointer { buf -> Int32 in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buf.baseAddress
    return nvmetrace_run_fuzzer(&argc, &argv) { data, size in
        FuzzTargets.run(selectedTarget, UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}
if rc != -1 { exit(rc) }

// No libFuzzer: replay files.
var count = 0
for path in args.dropFirst() where !path.hasPrefix("-") {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { continue }
    let files = isDir.boolValue
        ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" }
        : [path]
    for f in files {
        guard let d = FileManager.default.contents(atPath: f) else { continue }
        _ = d.withUnsafeBytes { FuzzTargets.run(selectedTarget, $0) }
        count += 1
    }
}
print("replayed \(count) inputs through \(selectedTarget) without a trap")
