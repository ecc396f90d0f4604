# (d) Export succeeds, but the model uses an operator ONNX Runtime does not know.
import torch
from torch.onnx import register_custom_op_symbolic

register_custom_op_symbolic("aten::relu", lambda g, x: g.op("acme::FastRelu", x), 9)
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
torch.onnx.export(model, (torch.randn(2, 4),), "acme.onnx", dynamo=False, custom_opsets={"acme": 1})
