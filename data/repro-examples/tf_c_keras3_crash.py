# (c) tf2onnx 1.17 cannot read a Keras 3 model: it fails while loading the model.
import tensorflow as tf
import tf2onnx

model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
onnx_model, _ = tf2onnx.convert.from_keras(model, opset=17)
