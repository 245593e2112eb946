int cls_placeholder(void) { return 0; }
