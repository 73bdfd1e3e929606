/* Stands in for the component's sources, so that the component library exists. */
int yolo11_pose_cmake_stub_component(void) { return 0; }
