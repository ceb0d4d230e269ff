//! Build script of the `biqa` package: under the `nvptx-stubs` feature only, compiles
//! `scripts/cuda/nvptx_stubs.c` and puts its object on the link line of every binary, test, example and bench of
//! this package (a plain object is always linked, unlike an archive member: see scripts/build-cuda.sh).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "nvptx-stubs")]
    {
        println!("cargo::rerun-if-changed=scripts/cuda/nvptx_stubs.c");
        let objects = cc::Build::new()
            .file("scripts/cuda/nvptx_stubs.c")
            .warnings(true)
            .compile_intermediates();
        for object in objects {
            println!("cargo::rustc-link-arg={}", object.display());
        }
    }
}
