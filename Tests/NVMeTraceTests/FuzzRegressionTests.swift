import Foundation
import Testing
@testable import NVMeTrace

/// Every seed and every input fuzzing once crashed on (Fuzz/regressions/TARGET) goes through its
/// fuzz target again: none may trap.
@Suite struct FuzzRegressionTests {
    static let fuzzDirectory = samplesDirectory.deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func inputs(_ kind: String, _ target: String) -> [URL] {
        let dir = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { dir.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTargets.names)
    func seedsAndRegressionsRunWithoutTrapping(target: String) throws {
        let seeds = Self.inputs("seeds", target)
        #expect(!seeds.isEmpty)
        var decoded = 0
        for url in seeds + Self.inputs("regressions", target) {
            let data = try Data(contentsOf: url)
            decoded += data.withUnsafeBytes { FuzzTargets.run(target, $0) }
        }
        // The seeds are real traffic in each target's input format: they decode to PDUs.
        #expect(decoded > 20, "\(target) seeds decoded \(decoded) PDUs")
    }
}
