"""The PyTorch backend of advgraph: lowers the IR to torch ops (CPU or any CUDA device)."""
