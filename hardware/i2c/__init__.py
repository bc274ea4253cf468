"""I2C drivers on smbus2. Each takes the bus it talks through; see base.I2CDevice."""
from .ads1115 import ADS1115
from .base import I2CDevice
from .mcp9808 import MCP9808
from .mcp9600 import MCP9600
from .nau7802 import NAU7802
from .tca9548a import TCA9548A, MuxChannel

__all__ = ['ADS1115', 'I2CDevice', 'MCP9808', 'MCP9600', 'NAU7802', 'TCA9548A', 'MuxChannel']
