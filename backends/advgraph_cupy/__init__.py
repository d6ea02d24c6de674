"""The CuPy backend of advgraph: the IR lowered to our own CUDA kernels (kernels/*.cu), compiled
with NVRTC. What is here: the kernels, their compilation, and the lowering of a Program to a
typed launch plan for one training iteration. The runtime that executes the plan on a GPU (and
captures it as one CUDA graph) is not written yet; the backend is not registered until it is.
"""
