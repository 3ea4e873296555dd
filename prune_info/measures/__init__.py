"""Pure numerical estimators: no nn.Module in sight."""
