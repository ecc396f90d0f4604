# (a) tf2onnx: a tf.function converts and matches TensorFlow.
import tensorflow as tf
import tf2onnx


@tf.function
def scaled_relu(x):
    return tf.nn.relu(x) * 2.0 + 1.0


spec = [tf.TensorSpec([None, 4], tf.float32, name="x")]
model, _ = tf2onnx.convert.from_function(scaled_relu, input_signature=spec, opset=17)
print("exported", len(model.graph.node), "nodes")
