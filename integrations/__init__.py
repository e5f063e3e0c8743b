"""LangChain and DSPy adapters (installed as ``ledom_reason.integrations``).

Import the framework you use; this package itself imports neither:

- :mod:`ledom_reason.integrations.langchain` — ``LedomVerifier``, ``LedomBestOfN``, ``LedomStepPruner``
  (needs ``pip install 'ledom-reason[langchain]'``).
- :mod:`ledom_reason.integrations.dspy` — ``LedomBestOfN``, ``LedomStepwiseCoT``, ``ledom_reward``,
  ``ledom_metric``
  (needs ``pip install 'ledom-reason[dspy]'``).
"""
