from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "siyu.simulation"
    label = "simulation"
    verbose_name = "模拟品牌 Simulation"
