import Foundation
import Testing
@testable import NVMeTrace

/// Every seed and every input fuzzing once crashed on (Fuzz/regressions/TARGET) goes through its
/// fuzz target again: none may trap. A folder that cannot be read, or holds nothing to replay, is a
/// failure, not an empty replay: the replay must not stop silently when the folders move.
@Suite struct FuzzRegressionTests {
    static let fuzzDirectory = samplesDirectory.deletingLastPathComponent().appendingPathComponent("Fuzz")

    /// The entries of a folder other than hidden files and the README; throws when it cannot be
    /// listed (missing, not a folder).
    static func entries(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted()
    }

    /// The inputs of Fuzz/KIND/TARGET; an empty list when that folder does not exist (a target
    /// fuzzing never crashed has no regressions folder), an error when it exists but cannot be read.
    static func inputs(_ kind: String, _ target: String) throws -> [URL] {
        let dir = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory) else { return [] }
        #expect(isDirectory.boolValue, "\(dir.path) is not a folder")
        return try entries(dir).map { dir.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTargets.names)
    func seedsAndRegressionsRunWithoutTrapping(target: String) throws {
        let seeds = try Self.inputs("seeds", target)
        #expect(!seeds.isEmpty, "no seeds in Fuzz/seeds/\(target)")
        var decoded = 0
        for url in seeds + (try Self.inputs("regressions", target)) {
            let data = try Data(contentsOf: url)
            #expect(!data.isEmpty, "\(url.path) is empty")
            decoded += data.withUnsafeBytes { FuzzTargets.run(target, $0) }
        }
        // The seeds are real traffic in each target's input format: they decode to PDUs.
        #expect(decoded > 20, "\(target) seeds decoded \(decoded) PDUs")
    }

    /// Fuzz/regressions exists, holds only folders named after fuzz targets (an input under any
    /// other name would never be replayed), none of them empty, and at least one input in all.
    @Test func regressionFolderIsReplayed() throws {
        let root = Self.fuzzDirectory.appendingPathComponent("regressions")
        let folders = try #require(try? Self.entries(root), "Fuzz/regressions is missing or unreadable at \(root.path)")
        var total = 0
        for name in folders {
            #expect(FuzzTargets.names.contains(name), "Fuzz/regressions/\(name) is not a fuzz target (\(FuzzTargets.names)): never replayed")
            let inputs = try Self.inputs("regressions", name)
            #expect(!inputs.isEmpty, "Fuzz/regressions/\(name) holds no inputs")
            total += inputs.count
        }
        #expect(total > 0, "Fuzz/regressions holds no inputs: the regression replay would run nothing")
    }
}
