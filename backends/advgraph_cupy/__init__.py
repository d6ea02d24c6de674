"""The CuPy backend of advgraph: the IR lowered to our own CUDA kernels (kernels/*.cu), run on a
GPU or, compiled as C++, on the CPU.

- kernels/: each <family>.cu beside <family>.py, which declares its kernels' NumPy twins and
  footprints and the emitters of the ops lowered to them; kernels/__init__.py merges them.
  codes.py: the integer codes kernels and Python share (epilogues, metric slots).
- lowering/ and plan.py: a Program → typed launch plans (one training iteration, inference),
  checked against the kernels' signatures (kernel_sources.py, which also compiles them with
  NVRTC) and footprints (footprint.py); memory.py: scratch buffers sharing memory by liveness.
- runtime.py: one runtime over three executors of a plan: CUDA (NVRTC + cupy, CUDA graphs), the
  host executor (host/: the same sources compiled with g++ and run on the CPU), and the NumPy
  twins, the oracle of the other two.
- backend.py: the `cupy` backend and its Trainer (`--device cuda[:N]` or `--device cpu`);
  resources.py: each kernel's registers and occupancy (ptxas, no GPU needed).
"""
