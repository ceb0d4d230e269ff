/* Empty NVPTX target initialisers, linked by build.rs under the `nvptx-stubs` feature.
 *
 * The offline recipe (scripts/build-cuda.sh) links a shared libLLVM built for the X86 target only, while
 * cubecl-llvm references the NVPTX initialisers of llvm-sys. biqa's `cuda` feature compiles kernels with NVRTC
 * (cubecl-cuda's `cpp`), so the LLVM NVPTX path, and these functions, are never used. */
void LLVMInitializeNVPTXTargetInfo(void) {}
void LLVMInitializeNVPTXTarget(void) {}
void LLVMInitializeNVPTXTargetMC(void) {}
void LLVMInitializeNVPTXAsmPrinter(void) {}
