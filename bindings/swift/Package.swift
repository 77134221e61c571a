// swift-tools-version:5.7
// Swift binding of Shivya: the UniFFI-generated Swift over the C module `shivyaFFI`,
// linked against libshivya (build it first: cargo build --release -p shivya-ffi).
import PackageDescription

let package = Package(
    name: "Shivya",
    products: [
        .library(name: "Shivya", targets: ["Shivya"]),
    ],
    targets: [
        // The generated C header and module map (bindings/generate.sh writes them).
        .systemLibrary(name: "shivyaFFI", path: "Sources/shivyaFFI/include"),
        .target(
            name: "Shivya",
            dependencies: ["shivyaFFI"],
            path: "Sources/Shivya",
            linkerSettings: [
                .linkedLibrary("shivya"),
                .unsafeFlags(["-L../../target/release"]),
            ]
        ),
        .testTarget(
            name: "ShivyaTests",
            dependencies: ["Shivya"],
            path: "Tests/ShivyaTests"
        ),
    ]
)
