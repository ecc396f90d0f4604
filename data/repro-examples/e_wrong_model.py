# (e) A symbolic function registered for aten::relu emits Sigmoid: the model loads and runs, wrongly.
import torch
from torch.onnx import register_custom_op_symbolic

register_custom_op_symbolic("aten::relu", lambda g, x: g.op("Sigmoid", x), 9)
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
torch.onnx.export(model, (torch.randn(2, 4),), "wrong.onnx", dynamo=False)
