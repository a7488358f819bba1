from confroute import privacy as _privacy

__version__ = "0.1.0"

# Before any submodule can import onnxruntime, huggingface_hub or litellm (see confroute.privacy).
_privacy.apply()
