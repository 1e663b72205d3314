"""Local consortium networks on CometBFT: ``careledger net init|start|stop|status``.

* :mod:`careledger.net.layout`: creating a network's directories, keys, genesis and configuration;
* :mod:`careledger.net.procs`: its processes (background, pid files, logs) and their status.
"""
