// Lab orchestration.
import Topology
