# (a) The same kind of model through the torch.export-based (dynamo) exporter.
import torch

model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.GELU(), torch.nn.Linear(4, 2)).eval()
program = torch.onnx.export(model, (torch.randn(3, 6),), dynamo=True)
program.save("mlp.onnx")
