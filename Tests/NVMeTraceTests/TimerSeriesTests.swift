import Testing
@testable import NVMeTrace

/// The running figures of a timer series: the largest gap the capture shows, kept apart from gaps
/// across host bytes the capture lost, and restarts that arrive late (bytes behind a given-up hole).
@Suite struct TimerSeriesTests {
    func event(_ seconds: Int64, frame: Int) -> TimerEvent {
        TimerEvent(ref: FrameRef(file: 0, frame: frame, timeNs: seconds * 1_000_000_000), connection: 0, command: nil)
    }

    @Test func gapsAcrossLossAreKeptApart() {
        var s = TimerSeries()
        s.add(event(0, frame: 1))
        s.add(event(5, frame: 2))
        s.hostBytesLost()
        #expect(s.lossSinceLast)
        s.add(event(14, frame: 3))   // 9 s, but across lost bytes
        #expect(!s.lossSinceLast)
        s.add(event(20, frame: 4))   // 6 s shown
        #expect(s.maxGap.map { [$0.from.ref.frame, $0.to.ref.frame] } == [3, 4])
        #expect(s.maxGapAcrossLoss.map { [$0.from.ref.frame, $0.to.ref.frame] } == [2, 3])
        #expect(s.count == 4 && s.last?.ref.frame == 4)
    }

    /// A restart that arrives after later ones splits the gap it falls in (the larger half stays);
    /// the last restart stays the latest.
    @Test func lateRestartSplitsTheGapItFallsIn() {
        var s = TimerSeries()
        s.add(event(0, frame: 1))
        s.add(event(3, frame: 2))
        s.hostBytesLost()
        s.add(event(13, frame: 5))   // 10 s across loss
        s.add(event(23, frame: 6))   // 10 s shown
        s.add(event(16, frame: 4))   // late: splits 13→23 into 3 s and 7 s
        s.add(event(7, frame: 3))    // late: splits 3→13 into 4 s and 6 s
        #expect(s.maxGap.map { [$0.from.ref.frame, $0.to.ref.frame] } == [4, 6])
        #expect(s.maxGap?.seconds == 7)
        #expect(s.maxGapAcrossLoss.map { [$0.from.ref.frame, $0.to.ref.frame] } == [3, 5])
        #expect(s.last?.ref.frame == 6 && s.count == 6)
    }
}
