"""Model packages: ``spec`` (what ``model.json`` says, checked without torch), ``registry`` (the architectures a
package can name, one module each: ``timm_models``, ``torchscript``), ``weights`` (state dicts read safely),
``preprocess`` (a B-scan as the model input) and ``package`` (loading, checking and saving a package)."""
