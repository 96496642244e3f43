"""LightningModules: FusionModule (encoders -> fusion -> head) and UnimodalModule."""
