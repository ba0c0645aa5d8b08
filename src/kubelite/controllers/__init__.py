"""kube-controller-manager: the control loops, built on `kubelite.client` (see `manager` for the framework
and how to add a controller).

    from kubelite.controllers import ControllerManagerConfig, run_controller_manager
    await run_controller_manager(client, stop=stop_event, config=ControllerManagerConfig.for_data_dir(data_dir))
"""

from .manager import (
    CONTROLLERS,
    Controller,
    ControllerContext,
    ControllerManager,
    ControllerManagerConfig,
    register_controller,
    run_controller_manager,
)

__all__ = ["CONTROLLERS", "Controller", "ControllerContext", "ControllerManager", "ControllerManagerConfig",
           "register_controller", "run_controller_manager"]
