// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "nvmetrace",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nvmetrace", targets: ["nvmetrace"]),
        .library(name: "NVMeTrace", targets: ["NVMeTrace"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // libpcap, found through pkg-config; Debian/Ubuntu: apt-get install libpcap-dev.
        .systemLibrary(
            name: "CPcap",
            path: "Sources/CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        .target(
            name: "NVMeTrace",
            dependencies: [
                "CPcap",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/NVMeTrace"
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
            path: "Sources/nvmetrace"
        ),
        .testTarget(
            name: "NVMeTraceTests",
            dependencies: ["NVMeTrace", "NVMeTraceSynth"],
            path: "Tests/NVMeTraceTests",
            resources: []
        ),
    ],
    swiftLanguageModes: [.v6]
)
