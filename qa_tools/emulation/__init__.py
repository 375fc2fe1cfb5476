"""Answers on CPUs this machine does not have, under qemu user-mode emulation (tests/emulation; `python -m
qa_tools.emulation`): an AWS Graviton2 (arm64, the template's ``Architecture: arm64``) and an AVX2-only x86
(Haswell, the least Lambda's x86 hosts promise). ONNX Runtime picks its int8 kernels by CPU at run time, so each
CPU's answers are compared with this machine's. Build and test tooling: nothing here is in the serving image.

``ask`` runs inside the emulated interpreter and imports only the standard library and ``handler``; keep this
package's ``__init__`` free of imports for that reason.
"""
