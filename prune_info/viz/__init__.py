"""Every figure and the HTML report. The only package that imports matplotlib, on first use."""
