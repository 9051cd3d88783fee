"""Pure loss functions, one small file per family; each is tested against its formula."""
