#ifndef CLINUXSUPPORT_H
#define CLINUXSUPPORT_H
int cls_placeholder(void);
#endif
