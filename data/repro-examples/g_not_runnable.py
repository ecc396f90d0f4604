# (g) The snippet uses a model class defined somewhere else in the reporter's project.
import torch

model = ResNetBackbone(depth=50)
torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), "backbone.onnx")
