"""The CuPy backend of advgraph: the IR lowered to our own CUDA kernels (kernels/*.cu).

- kernels/: each <family>.cu beside <family>.py, which declares its kernels' NumPy twins and
  footprints and the emitters of the ops lowered to them; kernels/__init__.py merges them.
- lowering/ and plan.py: a Program → typed launch plans (one training iteration, inference),
  checked against the kernels' signatures and footprints (footprint.py); codes.py: the codes
  kernels share.
- runtime.py: one runtime over three executors of a plan: CUDA (NVRTC + cupy, CUDA graphs), the
  host executor (host/: the same sources compiled as C++ and run on the CPU), and the NumPy
  twins (simulate.py), the oracle of the other two.
- backend.py: the `cupy` backend and its Trainer (`--device cuda[:N]` or `--device cpu`).
"""
