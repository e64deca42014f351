from molft.cli import run

run()
