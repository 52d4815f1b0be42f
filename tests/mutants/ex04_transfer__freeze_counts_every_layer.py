"""freeze_all_but_top counts every layer (BatchNormalization, pooling, activations) as one of the top n."""


def freeze_all_but_top(model, n):
    model.trainable = True
    layers = model.layers
    cut = max(0, len(layers) - n)
    for i, layer in enumerate(layers):
        layer.trainable = i >= cut
    return [layer.name for layer in layers[cut:]]
