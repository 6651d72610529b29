"""Labels, segment splits and the (features, label) matrix a model trains on."""
