"""The CuPy backend of advgraph: the IR lowered to our own CUDA kernels (kernels/*.cu), run on a
GPU or, compiled as C++, on the CPU.

Its modules, bottom to top (each imports only modules listed before it):
- codes.py: the integer codes kernels and Python share (epilogues, metric slots);
  kernel_sources.py: the .cu sources, their signatures, and their compilation with NVRTC;
  plan.py: the launch plan as data (buffers, launches).
- emitter.py: what the ops' emitters and the lowering share (`OpEmitter`, `Step`, the passes,
  the tape's `Entry`, `LoweringContext`: what an emitter may ask of the lowering).
- kernels/: each <family>.cu beside <family>.py, which declares its kernels' NumPy twins and
  footprints and the emitters of the ops lowered to them; kernels/__init__.py merges them.
- twins.py (the NumPy twins by kernel name), footprint.py (the footprints, and `check_plan`:
  every launch against its kernel's signature and footprint); lowering/: a Program → typed
  launch plans (one training iteration, inference); memory.py: scratch buffers sharing memory
  by liveness.
- runtime.py: one runtime over three executors of a plan: CUDA (NVRTC + cupy, CUDA graphs), the
  host executor (host/: the same sources compiled with g++ and run on the CPU), and the NumPy
  twins (twins.py), the oracle of the other two.
- regularizer_state.py: the regularisers' state (spectral norm's u, v; G's EMA) in and out of a
  trainer's state_dict.
- backend.py: the `cupy` backend and its Trainer (`--device cuda[:N]` or `--device cpu`);
  resources.py: each kernel's registers and occupancy (ptxas, no GPU needed).
"""
