"""LangChain and DSPy adapters (installed as ``ledom_reason.integrations``)."""
