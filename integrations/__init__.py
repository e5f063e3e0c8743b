"""LangChain and DSPy adapters (installed as ``ledom_reason.integrations``).

Import the framework you use; this package itself imports neither:

- :mod:`ledom_reason.integrations.langchain` — ``LedomVerifier``, ``LedomBestOfN``, ``LedomStepPruner``, and for
  agents ``LedomBestOfNMiddleware`` (``create_agent``) and ``LedomReasoningNode`` (LangGraph)
  (needs ``pip install 'ledom-reason[langchain]'``).
- :mod:`ledom_reason.integrations.dspy` — ``LedomBestOfN``, ``LedomStepwiseCoT``, ``ledom_reward``,
  ``ledom_metric``, ``ledom_feedback_metric`` (GEPA), ``attach_scorer``
  (needs ``pip install 'ledom-reason[dspy]'``).
"""
