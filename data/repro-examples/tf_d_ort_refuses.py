# (d) tf2onnx: string ops have no ONNX handler; the converter keeps them and ONNX Runtime refuses the model.
import tensorflow as tf
import tf2onnx


@tf.function
def split_words(x):
    return tf.strings.to_number(tf.strings.split(x).values)


spec = [tf.TensorSpec([None], tf.string, name="x")]
model, _ = tf2onnx.convert.from_function(split_words, input_signature=spec, opset=17)
