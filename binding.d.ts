// The exact surface of the native addon (build/Release/shortgpt_native.node or
// prebuilds/<platform>-<arch>/shortgpt-native.napi.node). Only lib/engine/binding.ts loads it;
// everything else in lib/ goes through that module.

export interface NativeBuildInfo {
  /** The package version the binary was built from (package.json at build time). */
  version: string;
  /** Backends compiled into this binary, e.g. ["cpu"] or ["cpu", "cuda"]. */
  backends: string[];
  /** Whether the AVX2/FMA kernels were compiled in (x86-64 builds). */
  avx2KernelsCompiled: boolean;
}

export interface NativeCpuInfo {
  /** CPU features detected at run time that the kernels care about. */
  features: string[];
  /** The GEMM micro-kernel that will run: "avx2-fma" or "portable". */
  kernel: 'avx2-fma' | 'portable';
  /** std::thread::hardware_concurrency(), at least 1. */
  hardwareThreads: number;
}

export interface NativeBinding {
  buildInfo(): NativeBuildInfo;
  cpuInfo(): NativeCpuInfo;
}
