// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "nvmetrace",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nvmetrace", targets: ["nvmetrace"]),
        .executable(name: "nvmetrace-gen", targets: ["nvmetrace-gen"]),
        .executable(name: "nvmetrace-bench", targets: ["nvmetrace-bench"]),
        .executable(name: "nvmetrace-floor", targets: ["nvmetrace-floor"]),
        .executable(name: "nvmetrace-fuzz", targets: ["nvmetrace-fuzz"]),
        .executable(name: "nvmetrace-soak", targets: ["nvmetrace-soak"]),
        .library(name: "NVMeTrace", targets: ["NVMeTrace"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // libpcap, found through pkg-config; Debian/Ubuntu: apt-get install libpcap-dev.
        .systemLibrary(
            name: "CPcap",
            path: "Sources/CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        // CRC32C with the CPU's instruction (SSE4.2 / ARMv8 CRC), chosen at run time.
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),
        // Capture files mapped for reading, surviving a file that shrinks meanwhile (SIGBUS).
        .target(name: "CMappedFile", path: "Sources/CMappedFile"),
        .target(
            name: "NVMeTrace",
            dependencies: [
                "CPcap",
                "CCRC32C",
                "CMappedFile",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/NVMeTrace",
            // The per-packet path touches class state millions of times a second; dynamic
            // exclusivity checks cost ~10% there (perf). Debug builds and tests keep them.
            // (-assume-single-threaded, non-atomic reference counting, was tried: once the per-PDU
            // retains were gone it measured no faster, so the library stays safe to use from
            // several threads.)
            // -disable-concrete-type-metadata-mangled-name-accessors: see the nvmetrace target.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked",
                                          "-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"],
                                         .when(configuration: .release))]
        ),
        // Builds synthetic NVMe/TCP traffic (PDUs, TCP conversations, pcap files) for the capture
        // generator and the tests.
        .target(
            name: "NVMeTraceSynth",
            dependencies: ["NVMeTrace"],
            path: "Sources/NVMeTraceSynth"
        ),
        .executableTarget(
            name: "nvmetrace",
            dependencies: [
                "NVMeTrace",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/nvmetrace",
            // Start-up: by default concrete generic types (Dictionary<FlowKey, …>, the option
            // structs' CodingKeys containers, …) are instantiated from their mangled names, so the
            // runtime looks their conformances up by scanning all ~6,000 conformance records of the
            // static binary, once per type; with this flag the compiler passes the witness tables
            // it knows. -2.5 million instructions per run with the same flag on NVMeTrace
            // (callgrind), about 0.5 ms.
            swiftSettings: [.unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"],
                                         .when(configuration: .release))]
        ),
        .executableTarget(
            name: "nvmetrace-gen",
            dependencies: [
                "NVMeTraceSynth",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/nvmetrace-gen"
        ),
        // The benchmark's floor: a bare libpcap read loop, in C.
        .executableTarget(
            name: "nvmetrace-floor",
            dependencies: ["CPcap"],
            path: "Sources/nvmetrace-floor"
        ),
        // `swift run -c release nvmetrace-bench`: the libpcap floor, nvmetrace and tshark on the same
        // generated captures, with throughput, ratios and peak RSS.
        .executableTarget(
            name: "nvmetrace-bench",
            dependencies: [
                "CPcap", "NVMeTrace", "NVMeTraceSynth",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/nvmetrace-bench"
        ),
        // The daemon's soak benchmark (issue #17): keep-alives of thousands of connections played
        // over lo to `nvmetrace monitor` for minutes, its RSS and drops sampled; then the highest
        // packet rate it takes without drops.
        .executableTarget(
            name: "nvmetrace-soak",
            dependencies: [
                "NVMeTraceSynth",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/nvmetrace-soak"
        ),
        // Fuzz/run builds this with -sanitize=fuzzer,address; plainly built it replays inputs.
        .target(name: "CFuzzerDriver", path: "Sources/CFuzzerDriver"),
        .executableTarget(
            name: "nvmetrace-fuzz",
            dependencies: ["NVMeTrace", "CFuzzerDriver"],
            path: "Sources/nvmetrace-fuzz"
        ),
        // zlib, found through pkg-config, for the tests only: they decode Chromium's PNG
        // screenshots of the HTML report. Debian/Ubuntu: apt-get install zlib1g-dev.
        .systemLibrary(
            name: "CZlib",
            path: "Tests/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        .testTarget(
            name: "NVMeTraceTests",
            dependencies: ["NVMeTrace", "NVMeTraceSynth", "CZlib"],
            path: "Tests/NVMeTraceTests",
            resources: []
        ),
    ],
    swiftLanguageModes: [.v6]
)
