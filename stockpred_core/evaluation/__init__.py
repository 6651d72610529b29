"""Walk-forward backtest, portfolio construction, performance figures and the HTML report."""
