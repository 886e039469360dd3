"""Triton kernels, one module per operation. Imported on first use by
``sava.kernels.dispatch``, never at package import, so that Triton's CPU
interpreter (``TRITON_INTERPRET=1``) can still be switched on before."""
