"""Web Push to the growers' devices: a new order and low stock ring with the desk closed."""
